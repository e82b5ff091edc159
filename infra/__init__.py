"""Infrastructure shared by every process: settings, database engine, Vault client, payload codec,
Temporal client, provider client factories, security helpers, the SSRF guard and log privacy.
Imports nothing above `models/`."""

__version__ = "0.1.0"
