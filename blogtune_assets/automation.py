"""Retraining by itself: a sensor on new posts and a weekly schedule.

Both compare the blog's posts, by content hash, with what the graph last read:
the sensor with the published raw_posts snapshot (to say what changed), the
schedule with the posts the latest sft_dataset was built from and the examples
the published adapter learned (its lineage.json). The sensor's run key is the
posts' digest, so one state of the blog never launches twice; the schedule's
adds the week and the published adapter's version.
"""

from __future__ import annotations

import json
import time

import dagster as dg

from blogtune_assets.core.artifacts import ArtifactNotFound
from blogtune_assets.core.blog_state import BlogSnapshot, take_snapshot
from blogtune_assets.core.environment import read
from blogtune_assets.core.warm_start import Lineage, train_example_keys
from blogtune_assets.resources import FULL_READ_TAG, ArtifactHome, BlogSource, RetrainPolicy

RETRAIN_JOB = dg.define_asset_job("blogtune", selection=dg.AssetSelection.all(), description="The whole graph, posts to model.")
SENSOR_INTERVAL_S = read("BLOGTUNE_SENSOR_INTERVAL_S")
# Dagster's run tag: a run that failed in a step (not a lost run worker) is not retried by run_retries.
NO_RETRY_ON_STEP_FAILURE = {"dagster/retry_on_asset_or_op_failure": "false"}
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
        published = artifacts.store.current("raw_posts")
        trained = BlogSnapshot.read(published)
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
    if full_check:
        # What a full check found may show in no stat, and the ticks that trust stats no longer see it: the run this
        # change leads to, on whichever tick, reads every file (FULL_READ_TAG).
        seen["full_read_pending"] = True
        context.update_cursor(json.dumps(seen))
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
    tags = {"blogtune/trigger": "new_posts", "blogtune/posts_digest": now.digest[:16], "blogtune/training_mode": mode}
    if seen.pop("full_read_pending", False):
        tags[FULL_READ_TAG] = "true"
        context.update_cursor(json.dumps(seen))
    return dg.RunRequest(
        # Dagster launches a run key once, ever: the published raw_posts version in it lets a blog that returns to
        # an earlier state (a post added, removed, added back) train again, while repeated ticks still launch one run.
        run_key=f"posts-{now.digest[:16]}-{published.name}",
        run_config=training_mode_config(mode),
        # A warm start the guard rejects fails the run (a blocking check): run retries (deploy/k8s) must not train it
        # again for the same verdict. A warm run lost with its node is not retried either; the weekly full run learns its posts.
        tags={**tags, **(NO_RETRY_ON_STEP_FAILURE if mode == "warm" else {})},
    )


def training_mode_config(mode: str) -> dict:
    """Run config asking lora_adapter to train `full` or `warm` (TrainConfig.training_mode)."""
    return {"ops": {"lora_adapter": {"config": {"training_mode": mode}}}}


@dg.schedule(
    job=RETRAIN_JOB,
    cron_schedule=RETRAIN_CRON,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly full retraining (BLOGTUNE_RETRAIN_CRON), unless the published adapter was trained in full "
    "on exactly the posts the blog has now.",
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext, blog: BlogSource, artifacts: ArtifactHome):
    now = take_snapshot(blog.path)
    up_to_date = _trained_in_full_on(now.digest, context.instance, artifacts.store)
    if up_to_date:
        return dg.SkipReason(up_to_date)
    # Full, so the drift warm starts may accumulate never outlives a week. The published version is in the key
    # because the digest alone would make a week of warm starts on unchanged posts look done.
    # The week too: a week whose run failed does not block the next week's.
    week = context.scheduled_execution_time.strftime("%G-W%V")
    return dg.RunRequest(
        run_key=f"weekly-{week}-{now.digest[:16]}-{_published_version(artifacts.store)}",
        run_config=training_mode_config("full"),
        tags={"blogtune/trigger": "schedule", "blogtune/training_mode": "full", FULL_READ_TAG: "true"},
    )


def _trained_in_full_on(digest: str, instance: dg.DagsterInstance, store) -> str | None:
    """Why no retrain is needed, or None: the latest sft_dataset was built from these posts, and the published
    adapter's lineage says it was trained in full on exactly that dataset's training examples."""
    event = instance.get_latest_materialization_event(dg.AssetKey("sft_dataset"))
    metadata = event.asset_materialization.metadata if event else {}
    if "posts_digest" not in metadata or metadata["posts_digest"].value != digest:
        return None
    adapter, dataset = store.current_or_none("lora_adapter"), store.current_or_none("sft_dataset")
    if adapter is None or dataset is None:
        return None
    try:
        lineage = Lineage.read(adapter)
    except (OSError, ValueError, TypeError):  # none (trained before warm starts), unreadable or of another format
        return None
    if lineage.training_mode != "full" or lineage.learned_examples != sorted(train_example_keys(dataset)):
        return None
    return f"posts unchanged since sft_dataset was built (digest {digest[:16]}), and {adapter.name} was trained in full on them"


def _published_version(store) -> str:
    adapter = store.current_or_none("lora_adapter")
    return adapter.name[:24] if adapter else "none"
