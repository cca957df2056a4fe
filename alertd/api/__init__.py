"""The HTTP layer: routes, request plumbing, mobile and staff handlers."""
