"""Development and test tools of acs-sms-consumer: a local Event Hubs endpoint (also as a child process
of another environment), an Azurite launcher, a synthetic ACS traffic generator with its ground truth,
a Prometheus harness and the `demo` wiring. A distribution of its own (devtools/pyproject.toml): the
service's wheel and container image do not contain it, and nothing here runs in production."""
