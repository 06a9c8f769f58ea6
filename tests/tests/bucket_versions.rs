//! A bucket's deletions are of the version the sweep looked at: an object
//! written again at the path meanwhile is neither deleted nor trashed unseen
//! (a real `moto_server`, which checks `If-Match` and
//! `x-amz-copy-source-if-match`).

use std::collections::HashMap;

use filegc_sweeper::bucket::{Bucket, BucketSettings};
use filegc_sweeper::volume::RemoveOutcome;
use filegc_tests::s3_server::S3Server;

const BUCKET: &str = "app-uploads";
const PATH: &str = "user_1_1700000000.jpg";
const KEY: &str = "img/user_1_1700000000.jpg";

fn open(server: &S3Server) -> Bucket {
    let variables: HashMap<&str, String> = server.variables().into_iter().collect();
    let settings = BucketSettings::from_variables("s3://app-uploads/img/", |name| {
        variables.get(name).cloned()
    })
    .expect("the test server's settings");
    Bucket::open(&settings).expect("the test server's bucket")
}

#[tokio::test]
async fn a_deletion_leaves_an_object_written_again_after_the_sweep_looked_at_it() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, KEY, 10);
    let bucket = open(&server);
    let seen = bucket.look(PATH).await.unwrap().expect("the object");
    assert!(seen.etag.is_some(), "moto sends ETags");
    // The application uploads the image again, with other content.
    server.put(BUCKET, KEY, 20);

    let trashing = bucket.trash_version(PATH, &seen).await.unwrap_err();
    assert!(
        trashing.to_string().contains("written again at this path"),
        "{trashing}"
    );
    // moto copies the new version despite the copy's condition: that copy
    // is no deletion's, and does not stay in the trash.
    assert_eq!(bucket.trashed_size(PATH).await.unwrap(), None);
    let unlinking = bucket.unlink_version(PATH, &seen).await.unwrap_err();
    assert!(
        unlinking.to_string().contains("written again at this path"),
        "{unlinking}"
    );
    assert_eq!(
        bucket.look(PATH).await.unwrap().map(|now| now.size_bytes),
        Some(20),
        "the new object stays"
    );

    // The version there now is the one the next attempt looks at, and goes.
    let now = bucket.look(PATH).await.unwrap().expect("the object");
    assert_eq!(
        bucket.trash_version(PATH, &now).await.unwrap(),
        RemoveOutcome::Removed { bytes: 20 }
    );
    assert!(!server.exists(BUCKET, KEY));
    assert_eq!(
        bucket.trashed_size(PATH).await.unwrap(),
        Some(20),
        "the trash holds the version deleted"
    );
}
