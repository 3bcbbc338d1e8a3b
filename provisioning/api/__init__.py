"""HTTP routes, thin: parse, call a store or service function, return a *Public model."""
