"""The console's routes, one module per page group; each is thin: read the request, call
``DlqAdmin`` (the same calls the JSON API makes), render a template."""
