"""A release's one summary: each prod job writes its problem's verdict row (`ml-project summary
--verdict`), and the release's last job gathers them (`make ci-release-summary`, no install)."""

from ml_project.summary import VERDICT_HEADER, render_verdict
from tests.ci.workflows import ROOT, run_make


def result(problem: str, version: str, **gate) -> dict:
    return {"problem": problem, "model_name": f"{problem}_prod", "model_version": version,
            "gate": gate}  # fmt: skip


def test_a_verdict_row_says_promoted_refused_or_not_promoted():
    promoted = result("a", "3", status="passed", promoted=True, champion_after="3", reasons=[])
    refused = result("b", "4", status="failed", promoted=False, champion_after="2",
                     reasons=["rmse 5.1 > 4.5", "worse | than the champion"])  # fmt: skip
    assert render_verdict(promoted) == "| a | `a_prod` | 3 | promoted | 3 | - |"
    assert render_verdict(refused) == (
        "| b | `b_prod` | 4 | refused | 2 | rmse 5.1 > 4.5; worse \\| than the champion |"
    )
    assert "| not promoted |" in render_verdict(result("c", "1"))  # a result without a verdict
    for line in VERDICT_HEADER.splitlines():  # the header's columns are the row's
        assert line.count("|") == render_verdict(promoted).count("|")


def test_the_release_summary_counts_the_rows_of_every_problem(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    rows = {
        "prod-verdict.md": "| a | `a_prod` | 3 | promoted | 3 | - |",
        "b-prod-verdict.md": "| b | `b_prod` | 4 | refused | 2 | worse |",
    }
    for name, row in rows.items():
        (out / name).write_text(f"{VERDICT_HEADER}\n{row}\n")
    page = tmp_path / "step-summary.md"
    environment = {"GITHUB_STEP_SUMMARY": str(page), "GITHUB_REF_NAME": "v2.0.0"}
    done = run_make("-s", "ci-release-summary", f"OUT={out}", cwd=ROOT, env=environment)
    assert done.returncode == 0, done.stderr
    summary = (out / "release-summary.md").read_text()
    assert summary.startswith("## Release v2.0.0: 1 promoted, 1 refused\n")
    assert summary.count(VERDICT_HEADER) == 1 and all(row in summary for row in rows.values())
    assert "stopped before its gate" in summary  # what a missing problem means
    assert page.read_text() == summary and done.stdout == summary


def test_a_release_without_verdicts_says_nothing_was_promoted(tmp_path):
    done = run_make("-s", "ci-release-summary", f"OUT={tmp_path}", cwd=ROOT, env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## Release: 0 promoted, 0 refused\n")
    assert VERDICT_HEADER not in done.stdout
