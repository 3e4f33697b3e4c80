import pytest

from blogtune_assets.core.artifacts import ArtifactNotFound, ArtifactStore


def test_a_finished_version_becomes_current(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version("thing") as folder:
        (folder / "data.txt").write_text("v1")
    assert (store.current("thing") / "data.txt").read_text() == "v1"


def test_a_failed_write_leaves_nothing_a_reader_would_follow(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.new_version("thing") as folder:
        (folder / "data.txt").write_text("v1")
    good = store.current("thing")
    with pytest.raises(RuntimeError):
        with store.new_version("thing") as folder:
            (folder / "data.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert store.current("thing") == good
    assert store.versions("thing") == [good]
    assert not [p for p in (tmp_path / "thing").iterdir() if p.name.startswith(".tmp")]


def test_old_versions_are_pruned(tmp_path):
    store = ArtifactStore(tmp_path, keep_versions=2)
    for i in range(4):
        with store.new_version("thing") as folder:
            (folder / "i").write_text(str(i))
    versions = store.versions("thing")
    assert [(v / "i").read_text() for v in versions] == ["2", "3"]
    assert store.current("thing") == versions[-1]


def test_missing_artifact_says_what_to_do(tmp_path):
    with pytest.raises(ArtifactNotFound, match="materialize it first"):
        ArtifactStore(tmp_path).current("nothing")
