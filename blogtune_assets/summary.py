"""Print where the latest artifacts are: `python -m blogtune_assets.summary`."""

from __future__ import annotations

import json

from blogtune_assets.core.artifacts import ArtifactNotFound
from blogtune_assets.definitions import all_assets
from blogtune_assets.resources import from_env


def main() -> None:
    store = from_env()["artifacts"].store
    print(f"blogtune artifacts under {store.home}")
    for asset in all_assets:
        name = asset.key.path[-1]
        try:
            folder = store.current(name)
        except ArtifactNotFound:
            print(f"  {name:<14} (not materialized)")
            continue
        files = ", ".join(sorted(p.name for p in folder.iterdir()))
        print(f"  {name:<14} {folder}\n  {'':<14} {files}")
    try:
        export = store.current("gguf_q4km")
    except ArtifactNotFound:
        return
    report = json.loads((export / "report.json").read_text())
    print(f"\nYour model: {export / 'model-Q4_K_M.gguf'}")
    print(f"  ollama create blogtune -f {export / 'Modelfile'} && ollama run blogtune \"Trying Rust\"")
    print(f"  llama-cli -m {export / 'model-Q4_K_M.gguf'} --jinja -cnv")
    if report["samples"]:
        sample = report["samples"][0]
        print(f"\nA generated post ({sample['finish_reason']}, {sample['tokens']} tokens):\n# {sample['title']}\n{sample['text']}")


if __name__ == "__main__":
    main()
