"""Development and test tools shipped with the service: a local Event Hubs endpoint, an Azurite
launcher, a synthetic ACS traffic generator and the `demo` wiring. Nothing here runs in production."""
