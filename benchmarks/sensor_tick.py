"""What a new-posts sensor tick costs on an unchanged blog: every file hashed (a full check) against only the
files whose (size, mtime_ns, inode) changed since the published snapshot (every other tick).

    .venv/bin/python -m benchmarks.sensor_tick --posts 21434 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import measure
from benchmarks.synthetic_blog import write_blog


def seconds(fn, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> dict:
    from blogtune_assets.core.blog_state import BlogSnapshot, take_snapshot
    from blogtune_assets.core.jekyll import scan_site

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=21434)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        blog = Path(work) / "blog"
        write_blog(blog, args.posts)
        scan = scan_site(blog)  # what raw_posts publishes: hashes and the stats taken before reading
        published = BlogSnapshot.of_frames(scan.posts, scan.rejected, stats=scan.stats)
        assert take_snapshot(blog, known=published) == take_snapshot(blog) == published
        payload = {
            "posts": args.posts,
            "blog_mb": round(sum(p.stat().st_size for p in blog.rglob("*") if p.is_file()) / measure.MB, 1),
            "repeats": args.repeats,
            "full_check_s": seconds(lambda: take_snapshot(blog), args.repeats),
            "tick_s": seconds(lambda: take_snapshot(blog, known=published), args.repeats),
        }
    payload["tick_vs_full"] = round(payload["tick_s"] / payload["full_check_s"], 3)
    measure.print_table(["posts", "MB", "full check s (median)", "tick s (median)", "tick / full"],
                        [[payload["posts"], payload["blog_mb"], payload["full_check_s"], payload["tick_s"], payload["tick_vs_full"]]])  # fmt: skip
    print("wrote", measure.write_results(args.out, "sensor_tick", payload))
    return payload


if __name__ == "__main__":
    main()
