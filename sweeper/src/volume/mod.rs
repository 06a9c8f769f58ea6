//! All file-system access, confined to the volume root: the opened volume, the walk and the trash.

mod confined;
#[cfg(test)]
mod fixture;
mod trash;
mod walk;

pub use self::confined::{
    check_path, in_trash, Capacity, FileError, RemoveOutcome, Volume, VolumeError, TRASH_DIR,
};
pub use self::trash::{RestoreOutcome, TrashItem, TrashUsage};
pub use self::walk::{Entry, Walk, WalkItem};
