"""SurveyMonkey webhooks: signature checks, the receiver service, and the intake wake-up channel."""
