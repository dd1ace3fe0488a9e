"""Provider metadata that registers the ``surveymonkey`` connection type with Airflow.

Active only when the project is installed with an entry point in pyproject.toml::

    [project.entry-points.apache_airflow_provider]
    provider_info = "closed_loop.provider_info:get_provider_info"

``package-name`` must equal the distribution name (``closed-loop``).
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "closed-loop",
        "name": "Closed loop",
        "description": "Closed-loop follow-up of post-implementation surveys (SurveyMonkey + Salesforce).",
        "hooks": [
            {
                "integration-name": "SurveyMonkey",
                "python-modules": ["closed_loop.hooks.surveymonkey"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "closed_loop.hooks.surveymonkey.SurveyMonkeyHook",
                "hook-name": "SurveyMonkey",
                "connection-type": "surveymonkey",
                "conn-fields": {
                    "ca_bundle": {"label": "CA bundle path", "schema": {"type": ["string", "null"]}},
                    "timeout": {"label": "Timeout (s)", "schema": {"type": ["number", "null"]}},
                    "daily_reserve": {"label": "Daily call reserve", "schema": {"type": ["integer", "null"]}},
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Base URL", "password": "Access token"},
                    "placeholders": {"host": "https://api.surveymonkey.com/v3"},
                },
            }
        ],
    }
