"""The SQL shared by the API and the activities: jobs (creation, plan metering, status roll-up),
records and links. Imports only `infra/` and `models/`."""
