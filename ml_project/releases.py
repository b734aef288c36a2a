"""Which release the env's champion was trained from: the code the scheduled retraining runs.

A version records its commit (`git.commit`) and the tag that named it (`git.tag`, when one
did). The release is that tag when it is no pre-release and still names that commit, else the
highest release tag at the commit; none when the champion came from no release (a branch, a
laptop, a release candidate), or when there is no champion. A refused release never holds
`champion`, so it is never the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_project import gate, lineage, registry, tracking
from ml_project.vocabulary import CHAMPION, GIT_COMMIT, GIT_TAG, status_of

# What the registry answers for a model, or an alias, that does not exist.
ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


@dataclass(frozen=True)
class ChampionRelease:
    """The release tag to check out ('' when none) and why there is none."""

    model_name: str
    version: str  # the champion's version, '' without a champion
    commit: str
    recorded_tag: str
    tag: str
    reason: str  # '' when `tag` is set


def is_pre_release(tag: str) -> bool:
    """v1.2.0-rc1 (anything with a '-') is a release candidate, never a release."""
    return "-" in tag


def choose_release(recorded: str, tags_at_commit: list[str]) -> tuple[str, str]:
    """(tag, reason) from the tag a version recorded and the tags naming its commit today
    (highest version first); the reason says why there is no tag. Pure."""
    releases = [tag for tag in tags_at_commit if not is_pre_release(tag)]
    if recorded and not is_pre_release(recorded) and recorded in tags_at_commit:
        return recorded, ""
    if releases:
        return releases[0], ""
    if recorded and recorded not in tags_at_commit:
        return "", f"its tag {recorded} no longer names its commit (moved or deleted)"
    if recorded:
        return "", f"it was trained from the pre-release {recorded}, and no release names it"
    return "", "no release tag names its commit"


def champion_release(client: MlflowClient, model_name: str, *, root: Path) -> ChampionRelease:
    """The release the champion of `model_name` was trained from, read in the checkout at
    `root` (which must hold the tags: `git fetch --tags`)."""
    try:
        version = tracking.retry_locked(client.get_model_version_by_alias, model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in ABSENT:
            raise
        reason = f"{model_name} has no champion: nothing was promoted yet"
        return ChampionRelease(model_name, "", "", "", "", reason)
    tags = registry.lineage_of(client, version)
    if status_of(version.tags or {}) != gate.PASSED:  # forced in by `promote --version`
        reason = (
            f"{model_name} version {version.version} (champion) did not pass the gate "
            f"(validation_status={status_of(version.tags or {})}): its code is no release to "
            "retrain from"
        )
        return ChampionRelease(model_name, str(version.version), "", "", "", reason)
    commit, recorded = tags.get(GIT_COMMIT, ""), tags.get(GIT_TAG, "")
    at_commit: list[str] = []
    if commit:
        done = lineage.git(root, "tag", "--points-at", commit, "--sort=-v:refname", timeout=30)
        at_commit = done.stdout.split() if done.returncode == 0 else []
    tag, reason = choose_release(recorded, at_commit) if commit else ("", "it records no commit")
    if reason:
        what = f"commit {commit[:12]}" if commit else "no commit"
        reason = f"{model_name} version {version.version} (champion, {what}): {reason}"
    return ChampionRelease(model_name, str(version.version), commit, recorded, tag, reason)
