"""Local, stateful fake of the Salesforce REST and SurveyMonkey v3 subsets the project uses (HTTPS)."""
