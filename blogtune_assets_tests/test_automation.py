"""The new-posts sensor and the weekly schedule, evaluated on real files and a real Dagster instance."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import dagster as dg
import pytest


from blogtune_assets import automation
from blogtune_assets.assets.posts import cleaned_posts, raw_posts
from blogtune_assets.automation import new_posts_sensor, training_mode_config, weekly_retrain_schedule
from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.blog_state import BlogSnapshot
from blogtune_assets.core.warm_start import Lineage, train_example_keys
from blogtune_assets.resources import FULL_READ_TAG, ArtifactHome, ArtifactPathIOManager, BlogSource, RetrainPolicy
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post
from blogtune_assets_tests.conftest import materialize_data

NEW_POST = ("en/2026-11-01-a-new-post.md", post_text("A new post", LONG_BODY))


@pytest.fixture
def instance():
    # In memory: runs and events need no files here, and nothing outlives the test (see the schedule test).
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def blog(sample_blog_copy, tmp_path):
    """The sample blog with raw_posts published from it, as after a first materialization."""
    home = str(tmp_path / "home")
    resources = {
        "blog": BlogSource(blog_dir=str(sample_blog_copy)),
        "artifacts": ArtifactHome(home=home),
        "io_manager": ArtifactPathIOManager(home=home),
        "retrain": RetrainPolicy(),
    }
    assert dg.materialize([raw_posts], resources=resources).success
    return sample_blog_copy, resources


def tick(instance, resources, cursor=None, **policy):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={**resources, "retrain": RetrainPolicy(**policy)}
    )
    return new_posts_sensor(context), context.cursor


def test_nothing_materialized_yet_skips_with_the_reason(instance, sample_blog_copy, tmp_path):
    resources = {"blog": BlogSource(blog_dir=str(sample_blog_copy)), "artifacts": ArtifactHome(home=str(tmp_path / "empty"))}
    result, _ = tick(instance, resources)
    assert isinstance(result, dg.SkipReason) and "nothing materialized yet" in result.skip_message


def test_first_tick_with_no_change_skips(instance, blog):
    result, cursor = tick(instance, blog[1])
    assert isinstance(result, dg.SkipReason) and "no change" in result.skip_message
    assert json.loads(cursor).keys() == {"full_check_at"}  # the first tick hashes every file


def test_new_post_launches_one_retraining_run_keyed_by_the_posts_state(instance, blog):
    site, resources = blog
    write_post(site, *NEW_POST)
    first, cursor = tick(instance, resources)
    again, _ = tick(instance, resources, cursor)
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("posts-")
    assert again.run_key == first.run_key  # the same state → the same key, which Dagster launches once
    assert first.tags["blogtune/trigger"] == "new_posts"
    assert first.run_config == training_mode_config("warm")  # new posts warm-start the published adapter
    # A rejected warm start fails its run; Kubernetes run retries must not retrain it for the same verdict.
    assert first.tags["dagster/retry_on_asset_or_op_failure"] == "false"


def test_a_state_the_blog_returns_to_is_trained_again(instance, blog):
    # Dagster never launches a run key twice: keyed by the posts' state alone, the post added back was never trained.
    site, resources = blog

    def tick_then_run():
        request, _ = tick(instance, resources)
        assert dg.materialize([raw_posts], resources=resources, instance=instance).success  # what the run reads first
        return request

    new_post = write_post(site, *NEW_POST)
    added = tick_then_run()
    new_post.unlink()
    tick_then_run()
    write_post(site, *NEW_POST)
    added_back = tick_then_run()
    assert isinstance(added_back, dg.RunRequest) and added_back.run_key != added.run_key


def test_a_deleted_post_asks_for_a_full_retrain_only_when_the_person_set_that(instance, blog):
    site, resources = blog
    next((site / "_posts" / "en").glob("*.md")).unlink()
    assert tick(instance, resources)[0].run_config == training_mode_config("warm")
    full = tick(instance, resources, full_retrain_on_delete=True)[0]
    assert full.run_config == training_mode_config("full") and full.tags["blogtune/training_mode"] == "full"
    assert "dagster/retry_on_asset_or_op_failure" not in full.tags  # a full run lost with its node is retried


def test_edited_and_deleted_posts_are_changes_and_saving_unchanged_text_is_not(instance, blog):
    site, resources = blog
    post = next((site / "_posts" / "en").glob("*.md"))
    original = post.read_bytes()
    post.write_bytes(original)  # saved again, same text, new mtime
    post.write_bytes(original)
    assert isinstance(tick(instance, resources)[0], dg.SkipReason)

    post.write_bytes(original + b"\nOne more line.\n")
    edited, _ = tick(instance, resources)
    post.unlink()
    deleted, _ = tick(instance, resources)
    assert isinstance(edited, dg.RunRequest) and isinstance(deleted, dg.RunRequest)
    assert edited.run_key != deleted.run_key


def test_min_new_posts_waits_for_enough_changes(instance, blog):
    site, resources = blog
    write_post(site, *NEW_POST)
    result, _ = tick(instance, resources, min_new_posts=2)
    assert isinstance(result, dg.SkipReason) and "1 new, 0 changed, 0 deleted" in result.skip_message
    write_post(site, "en/2026-11-02-another.md", post_text("Another", LONG_BODY))
    assert isinstance(tick(instance, resources, min_new_posts=2)[0], dg.RunRequest)


def test_quiet_period_and_the_cursor_survive_a_restart(instance, blog, monkeypatch):
    site, resources = blog
    clock = [1_000_000.0]
    monkeypatch.setattr(automation.time, "time", lambda: clock[0])
    write_post(site, *NEW_POST)
    waiting, cursor = tick(instance, resources, quiet_period_s=60)
    assert isinstance(waiting, dg.SkipReason) and "unchanged for 60 s" in waiting.skip_message
    assert len(cursor) < 200 and json.loads(cursor)["since"] == clock[0]  # one digest and one time

    clock[0] += 30
    write_post(site, NEW_POST[0], NEW_POST[1] + "\nEdited while writing.\n")  # the clock restarts
    waiting, cursor = tick(instance, resources, cursor, quiet_period_s=60)
    assert isinstance(waiting, dg.SkipReason) and json.loads(cursor)["since"] == clock[0]

    clock[0] += 61
    # A fresh context with the stored cursor is what the daemon builds after a restart.
    launched, _ = tick(instance, resources, cursor, quiet_period_s=60)
    assert isinstance(launched, dg.RunRequest)


def test_a_run_in_progress_is_not_duplicated(instance, blog):
    site, resources = blog
    instance.add_run(dg.DagsterRun(job_name="blogtune", run_id="0" * 8 + "-run-in-progress", status=dg.DagsterRunStatus.STARTED))
    write_post(site, *NEW_POST)
    result, _ = tick(instance, resources)
    assert isinstance(result, dg.SkipReason) and "still in progress" in result.skip_message


@pytest.mark.slow
def test_schedule_retrains_unless_the_adapter_was_trained_in_full_on_the_posts_there_are(sample_blog_copy, home, monkeypatch):
    store = ArtifactStore(home)

    def publish_adapter(mode: str, learned: list[str]) -> None:
        with store.new_version("lora_adapter") as folder:
            Lineage(mode, "", {}, learned, cumulative_steps=1).write(folder)

    with dg.instance_for_test() as instance:

        def weekly_tick():
            # The context opens its own instance from the ref: outside a `with` it stays open until the
            # garbage collector closes it, mid-way through a later test (see conftest's leak check).
            with dg.build_schedule_context(
                instance=instance,
                resources={"blog": BlogSource(blog_dir=str(sample_blog_copy)), "artifacts": ArtifactHome(home=str(home))},
                scheduled_execution_time=datetime(2026, 12, 6, 3, tzinfo=timezone.utc),
            ) as context:
                return weekly_retrain_schedule(context)

        assert isinstance(weekly_tick(), dg.RunRequest)  # never trained

        materialize_data(sample_blog_copy, home, monkeypatch, instance)
        assert isinstance(weekly_tick(), dg.RunRequest)  # the data is built, no adapter yet
        learned = sorted(train_example_keys(store.current("sft_dataset")))
        # Posts unchanged, but the published adapter was warm-started: the week's full retrain still runs.
        publish_adapter("warm", learned)
        assert weekly_tick().run_config == training_mode_config("full")
        # Trained in full, but on an older dataset (a post missing): still runs.
        publish_adapter("full", learned[1:])
        assert isinstance(weekly_tick(), dg.RunRequest)
        publish_adapter("full", learned)
        skipped = weekly_tick()
        assert isinstance(skipped, dg.SkipReason) and "unchanged since sft_dataset" in skipped.skip_message
        with store.new_version("lora_adapter") as folder:
            (folder / "lineage.json").write_text('{"training_mode": "full"}')  # another format: retrain, do not crash
        assert isinstance(weekly_tick(), dg.RunRequest)
        publish_adapter("full", learned)

        write_post(sample_blog_copy, *NEW_POST)
        request = weekly_tick()
        assert isinstance(request, dg.RunRequest) and request.tags["blogtune/trigger"] == "schedule"
        assert request.tags[FULL_READ_TAG] == "true"  # weekly, every file is read, whatever its stat says
        assert request.run_key.startswith("weekly-2026-W49-")  # a failed week does not block the next
        assert request.run_config == training_mode_config("full")  # the schedule never warm-starts


def test_unchanged_posts_keep_their_data_versions(instance, blog):
    site, resources = blog
    assets = [raw_posts, cleaned_posts]

    def versions():
        result = dg.materialize(assets, resources=resources, instance=instance)
        return {
            e.asset_key.path[-1]: e.event_specific_data.materialization.tags["dagster/data_version"]
            for e in result.get_asset_materialization_events()
        }

    first, second = versions(), versions()
    assert first == second  # rematerialized, same posts: nothing downstream looks stale
    os.utime(next((site / "_posts").rglob("*.md")))  # touched, not changed
    assert versions() == first
    write_post(site, *NEW_POST)
    changed = versions()
    assert changed["raw_posts"] != first["raw_posts"] and changed["cleaned_posts"] != first["cleaned_posts"]


def test_a_run_works_from_the_snapshot_raw_posts_read_and_the_sensor_sees_later_edits(instance, blog):
    site, resources = blog  # raw_posts already read the blog
    read = BlogSnapshot.read(ArtifactStore(resources["artifacts"].home).current("raw_posts"))
    write_post(site, *NEW_POST)  # lands while the run goes on
    sorted((site / "_posts" / "en").glob("*.md"))[0].unlink()  # an old post, not the new one

    result = dg.materialize([raw_posts.to_source_asset(), cleaned_posts], resources=resources, instance=instance)
    cleaned = result.asset_materializations_for_node("cleaned_posts")[0].metadata
    assert cleaned["posts_digest"].value == read.digest  # downstream steps use what raw_posts read, not the live blog
    assert cleaned["posts_read"].value == sum(1 for p in read.files if p.endswith(".md"))

    request, _ = tick(instance, resources)
    assert isinstance(request, dg.RunRequest)  # the change is picked up by the next tick


def test_a_tick_hashes_only_files_whose_stat_changed(blog, monkeypatch):
    """Every tick hashed every post: 4.1 s every 30 s at 21,434 posts."""
    from blogtune_assets.core import blog_state

    site, resources = blog
    published = BlogSnapshot.read(ArtifactStore(resources["artifacts"].home).current("raw_posts"))
    original, hashed = blog_state.post_file_hash, []
    monkeypatch.setattr(blog_state, "post_file_hash", lambda site_dir, path: hashed.append(os.path.basename(path)) or original(site_dir, path))
    assert blog_state.take_snapshot(site, known=published) == published and hashed == []
    edited = sorted((site / "_posts" / "en").glob("*.md"))[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    write_post(site, *NEW_POST)
    now = blog_state.take_snapshot(site, known=published)
    assert sorted(hashed) == sorted([edited.name, NEW_POST[0].split("/")[-1]])
    assert now.changes_since(published).summary() == "1 new, 1 changed, 0 deleted"


def _edit_keeping_size_and_mtime(site):
    post = sorted((site / "_posts" / "en").glob("*.md"))[0]
    before, text = post.stat(), post.read_text(encoding="utf-8")
    assert " the " in text
    post.write_text(text.replace(" the ", " THE ", 1), encoding="utf-8")  # same size, other bytes
    os.utime(post, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime, as `touch -d` does


def test_an_edit_that_keeps_size_and_mtime_is_caught_at_the_next_tick_by_its_ctime(instance, blog):
    site, resources = blog
    _, cursor = tick(instance, resources, full_check_s=3600)  # the first tick is a full check
    _edit_keeping_size_and_mtime(site)
    caught, _ = tick(instance, resources, cursor, full_check_s=3600)
    assert isinstance(caught, dg.RunRequest)
    assert FULL_READ_TAG not in caught.tags  # seen by its stat: raw_posts will read it without reading every file


def _freeze_stats_at_the_published_snapshot(monkeypatch, site, resources) -> None:
    """A file system whose times do not move: every file the published raw_posts read keeps the stat it had then."""
    from blogtune_assets.core import blog_state

    published = BlogSnapshot.read(ArtifactStore(resources["artifacts"].home).current("raw_posts"))
    real_stat = blog_state.file_stat
    monkeypatch.setattr(blog_state, "file_stat", lambda path: published.stats.get(blog_state.post_path(site, path)) or real_stat(path))


def test_the_full_check_hashes_every_file_whatever_its_stat_says(instance, blog, monkeypatch):
    """On a file system whose times do not move, only the periodic full check sees such an edit."""
    site, resources = blog
    clock = [2_000_000.0]
    monkeypatch.setattr(automation.time, "time", lambda: clock[0])
    _, cursor = tick(instance, resources, full_check_s=3600)
    _freeze_stats_at_the_published_snapshot(monkeypatch, site, resources)
    _edit_keeping_size_and_mtime(site)
    clock[0] += 60
    missed, cursor = tick(instance, resources, cursor, full_check_s=3600)
    assert isinstance(missed, dg.SkipReason) and "no change" in missed.skip_message
    clock[0] += 3600
    caught, _ = tick(instance, resources, cursor, full_check_s=3600)
    assert isinstance(caught, dg.RunRequest)
    assert caught.tags[FULL_READ_TAG] == "true"  # raw_posts, trusting the same stat, would not read the edit either


def test_a_run_after_a_full_check_found_a_change_reads_every_file_even_when_a_later_tick_launches_it(instance, blog, monkeypatch):
    """The quiet period defers the full check's request; the ticks after it trust stats and no longer see an edit
    that shows in none, so the tag must outlive the tick that found it (found in review)."""
    site, resources = blog
    clock = [2_000_000.0]
    monkeypatch.setattr(automation.time, "time", lambda: clock[0])
    _, cursor = tick(instance, resources, full_check_s=3600, quiet_period_s=600)
    _freeze_stats_at_the_published_snapshot(monkeypatch, site, resources)
    _edit_keeping_size_and_mtime(site)
    clock[0] += 3600
    waiting, cursor = tick(instance, resources, cursor, full_check_s=3600, quiet_period_s=600)
    assert isinstance(waiting, dg.SkipReason) and "1 changed" in waiting.skip_message
    write_post(site, *NEW_POST)  # seen by its stat on the next, trusting tick, with the hidden edit not
    clock[0] += 60
    _, cursor = tick(instance, resources, cursor, full_check_s=3600, quiet_period_s=600)
    clock[0] += 600
    launched, cursor = tick(instance, resources, cursor, full_check_s=3600, quiet_period_s=600)
    assert isinstance(launched, dg.RunRequest) and launched.tags[FULL_READ_TAG] == "true"
    assert "full_read_pending" not in json.loads(cursor)
