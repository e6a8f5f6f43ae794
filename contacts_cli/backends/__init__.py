"""The backends the CLI and the HTTP routes talk to: in-process (``local``) or over HTTP."""
