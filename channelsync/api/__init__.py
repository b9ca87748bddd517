"""Channel sync over HTTP: the public iCal export and the OpenAPI schema of what we send."""
