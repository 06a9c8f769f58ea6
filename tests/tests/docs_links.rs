//! The README is the front door and `docs/` holds the rest. These checks
//! keep every link between them, and into the repository, pointing at a file
//! that exists and, with a `#fragment`, at a heading that exists there; and
//! they keep every page of `docs/` reachable from the README.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown files whose links are checked, relative to the repository.
fn pages() -> Vec<PathBuf> {
    let root = repository();
    let mut pages = vec![
        PathBuf::from("README.md"),
        PathBuf::from("tests/RELIABILITY.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| path.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text outside fenced code blocks and inline code spans, line by line.
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop `code spans`, so that text in them is never taken for a link.
        let mut kept = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                kept.push_str(part);
            }
        }
        lines.push(kept);
    }
    lines
}

/// The targets of the inline links `[text](target)` of a page.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings, numbered as GitHub numbers repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(&heading.replace('`', ""));
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// `path` with `.` and `..` resolved, without touching the file system.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_link_reaches_a_file_and_a_heading_that_exist() {
    let root = repository();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&root.join(&page));
        let dir = page.parent().unwrap_or(Path::new(""));
        for target in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked = if file.is_empty() {
                page.clone()
            } else {
                normalized(&dir.join(file))
            };
            let full = root.join(&linked);
            if !full.starts_with(&root) || !full.exists() {
                broken.push(format!(
                    "{}: ({target}): {} does not exist",
                    page.display(),
                    linked.display()
                ));
                continue;
            }
            if let Some(fragment) = fragment {
                if linked.extension().is_none_or(|ext| ext != "md") {
                    broken.push(format!(
                        "{}: ({target}): a #fragment into a file that is not Markdown",
                        page.display()
                    ));
                } else if !anchors(&read(&full)).contains(fragment) {
                    broken.push(format!(
                        "{}: ({target}): {} has no heading #{fragment}",
                        page.display(),
                        linked.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no links found: is the link reader broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_docs_is_linked_from_the_readme() {
    let root = repository();
    let readme: BTreeSet<PathBuf> = links(&read(&root.join("README.md")))
        .iter()
        .map(|target| normalized(Path::new(target.split('#').next().unwrap_or_default())))
        .collect();
    let unlinked: Vec<String> = pages()
        .into_iter()
        .filter(|page| page.starts_with("docs") && !readme.contains(page))
        .map(|page| page.display().to_string())
        .collect();
    assert!(
        unlinked.is_empty(),
        "docs/ pages the README does not link: {}",
        unlinked.join(", ")
    );
}

#[test]
fn anchors_follow_githubs_rules() {
    let text = "# Safety model\n\n## The exceptions, all of them\n\n```\n# not a heading\n```\n\n## Maintenance policies of `filegc run`\n\n### 1. The database\n\n## Safety model\n";
    let anchors = anchors(text);
    for expected in [
        "safety-model",
        "the-exceptions-all-of-them",
        "maintenance-policies-of-filegc-run",
        "1-the-database",
        "safety-model-1",
    ] {
        assert!(anchors.contains(expected), "{expected} in {anchors:?}");
    }
    assert!(!anchors.contains("not-a-heading"), "{anchors:?}");
    assert_eq!(
        links("see [a](docs/a.md#b) and `[not](a link)`, and [c](https://x.y)\n```\n[d](e)\n```"),
        ["docs/a.md#b", "https://x.y"]
    );
}
