#!/usr/bin/env python3
"""The old tool's way of finding the orphans, the baseline `make bench`
compares `filegc orphans` with: list the folder, fetch every referenced
name from both tables, take the set difference, and stat only the orphans.

Usage: old_tool_orphans.py VOLUME PSQL DATABASE_URL
Prints the number of orphans and their total size.
"""

import os
import subprocess
import sys

REFERENCED = """
SELECT image_path FROM facial_evaluations WHERE image_path IS NOT NULL
UNION ALL SELECT secondary_image_path FROM facial_evaluations WHERE secondary_image_path IS NOT NULL
UNION ALL SELECT input_image_path FROM generations WHERE input_image_path IS NOT NULL
UNION ALL SELECT output_image_path FROM generations WHERE output_image_path IS NOT NULL
"""


def main():
    volume, psql, url = sys.argv[1:4]
    on_disk = {entry.name for entry in os.scandir(volume) if entry.is_file(follow_symlinks=False)}
    rows = subprocess.run(
        [psql, "--no-psqlrc", "--tuples-only", "--no-align", "--quiet", "--command", REFERENCED, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    referenced = {os.path.basename(line) for line in rows.splitlines()}
    orphans = on_disk - referenced
    size = sum(os.stat(os.path.join(volume, name)).st_size for name in orphans)
    print(len(orphans), size)


if __name__ == "__main__":
    main()
