"""Gateway protection: a breaker that judges the gateway (not a few payments), merchant
isolation, and a gateway rate limit shared by every worker of a namespace."""
