"""Hooks for Salesforce (on top of the official provider) and SurveyMonkey v3, with their typed errors."""

from closed_loop.hooks.errors import (
    SalesforceApiError,
    SalesforceBudgetExhausted,
    SalesforceSessionExpired,
    SurveyMonkeyBadPayload,
    SurveyMonkeyBudgetExhausted,
    SurveyMonkeyError,
)
from closed_loop.hooks.salesforce import ClosedLoopSalesforceHook
from closed_loop.hooks.surveymonkey import SurveyMonkeyHook

__all__ = [
    "ClosedLoopSalesforceHook",
    "SalesforceApiError",
    "SalesforceBudgetExhausted",
    "SalesforceSessionExpired",
    "SurveyMonkeyBadPayload",
    "SurveyMonkeyBudgetExhausted",
    "SurveyMonkeyError",
    "SurveyMonkeyHook",
]
