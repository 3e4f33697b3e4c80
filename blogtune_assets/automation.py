"""Retraining by itself: a sensor on new posts and a weekly schedule.

Both compare the blog's posts, by content hash, with what the graph last read:
the sensor with the published raw_posts snapshot (to say what changed), the
schedule with the posts the latest sft_dataset was built from. The run key is
the posts' digest, so one state of the blog never launches twice.
"""

from __future__ import annotations

import json
import time

import dagster as dg

from blogtune_assets.core.artifacts import ArtifactNotFound
from blogtune_assets.core.blog_state import BlogSnapshot, take_snapshot
from blogtune_assets.core.environment import read
from blogtune_assets.resources import ArtifactHome, BlogSource, RetrainPolicy

RETRAIN_JOB = dg.define_asset_job("blogtune", selection=dg.AssetSelection.all(), description="The whole graph, posts to model.")
SENSOR_INTERVAL_S = read("BLOGTUNE_SENSOR_INTERVAL_S")
RETRAIN_CRON = read("BLOGTUNE_RETRAIN_CRON")


# Queued counts too: the daemon may not have started it yet.
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _run_in_progress(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
    return runs[0] if runs else None


@dg.sensor(
    job=RETRAIN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains the whole graph when posts are added, edited or deleted under _posts/.",
)
def new_posts_sensor(context: dg.SensorEvaluationContext, blog: BlogSource, artifacts: ArtifactHome, retrain: RetrainPolicy):
    try:
        trained = BlogSnapshot.read(artifacts.store.current("raw_posts"))
    except (ArtifactNotFound, FileNotFoundError):
        return dg.SkipReason("nothing materialized yet: materialize the graph once; new posts retrain it after that")
    # The cursor holds a digest and two times, whatever the blog's size, and lives in Dagster's storage,
    # so a daemon restart picks up where it was.
    seen = json.loads(context.cursor) if context.cursor else {}
    full_check = time.time() - seen.get("full_check_at", 0) >= retrain.full_check_s
    # Between full checks only files whose stat differs from the published snapshot's are hashed.
    now = take_snapshot(blog.path, known=None if full_check else trained)
    if full_check:
        seen["full_check_at"] = time.time()
        context.update_cursor(json.dumps(seen))
    changes = now.changes_since(trained)
    if not changes.count:
        return dg.SkipReason(f"no change: the {len(now.files)} post files are those raw_posts last read")
    if changes.count < retrain.min_new_posts:
        return dg.SkipReason(f"{changes.summary()}: waiting for {retrain.min_new_posts} changed posts (min_new_posts)")

    if seen.get("digest") != now.digest:
        seen.update(digest=now.digest, since=time.time())
        context.update_cursor(json.dumps(seen))
    quiet_for = time.time() - seen["since"]
    if quiet_for < retrain.quiet_period_s:
        return dg.SkipReason(f"{changes.summary()}: waiting until posts are unchanged for {retrain.quiet_period_s} s")
    running = _run_in_progress(context.instance)
    if running:
        return dg.SkipReason(f"{changes.summary()}: run {running.run_id} is still in progress")
    mode = "full" if changes.deleted and retrain.full_retrain_on_delete else "warm"
    return dg.RunRequest(
        run_key=f"posts-{now.digest[:16]}",
        run_config=training_mode_config(mode),
        tags={"blogtune/trigger": "new_posts", "blogtune/posts_digest": now.digest[:16], "blogtune/training_mode": mode},
    )


def training_mode_config(mode: str) -> dict:
    """Run config asking lora_adapter to train `full` or `warm` (TrainConfig.training_mode)."""
    return {"ops": {"lora_adapter": {"config": {"training_mode": mode}}}}


@dg.schedule(
    job=RETRAIN_JOB,
    cron_schedule=RETRAIN_CRON,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly retraining (BLOGTUNE_RETRAIN_CRON), only if the posts changed since the last sft_dataset.",
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext, blog: BlogSource):
    now = take_snapshot(blog.path)
    event = context.instance.get_latest_materialization_event(dg.AssetKey("sft_dataset"))
    if event is not None:
        metadata = event.asset_materialization.metadata
        built_from = metadata["posts_digest"].value if "posts_digest" in metadata else None
        if built_from == now.digest and _published_adapter_mode(context.instance) == "full":
            return dg.SkipReason(f"posts unchanged since sft_dataset was built (digest {now.digest[:16]}), adapter trained in full")
    # Full, so the drift warm starts may accumulate never outlives a week; the digest alone would make a week
    # of warm starts on unchanged posts look done.
    return dg.RunRequest(
        run_key=f"weekly-{now.digest[:16]}-{_published_adapter_version(context.instance)}",
        run_config=training_mode_config("full"),
        tags={"blogtune/trigger": "schedule", "blogtune/training_mode": "full"},
    )


def _adapter_metadata(instance: dg.DagsterInstance) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey("lora_adapter"))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}


def _published_adapter_mode(instance: dg.DagsterInstance) -> str:
    return _adapter_metadata(instance).get("training_mode", "full")


def _published_adapter_version(instance: dg.DagsterInstance) -> str:
    return str(_adapter_metadata(instance).get("path", "none")).rstrip("/").rsplit("/", 1)[-1][:24]
