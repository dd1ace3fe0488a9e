"""closed-loop: follow-up of negative post-implementation surveys (Airflow 3, Salesforce, SurveyMonkey)."""
