"""``python -m closed_loop.preflight [--playbook PATH]``: the preflight through the configured Airflow
connections (``salesforce_default``, ``surveymonkey_default``); exit code 1 when a check fails."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closed_loop.preflight", description=__doc__)
    parser.add_argument("--playbook", default=None, help="playbook file (default $CLOSED_LOOP_PLAYBOOK)")
    parser.add_argument("--salesforce-conn-id", default="salesforce_default")
    parser.add_argument("--surveymonkey-conn-id", default="surveymonkey_default")
    args = parser.parse_args(argv)

    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
    from closed_loop.playbook import load_playbook
    from closed_loop.preflight.run import report, run_preflight
    from closed_loop.survey_messages import check_messages

    playbook = load_playbook(args.playbook)
    results = run_preflight(
        ClosedLoopSalesforceHook(args.salesforce_conn_id),
        SurveyMonkeyHook(args.surveymonkey_conn_id),
        playbook,
        check_messages(playbook),
    )
    print(report(results))
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
