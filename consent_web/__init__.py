"""The consent page: the user signs in with a one-time code sent to their number and
answers consent prompts, chooses what each app sees, ends pairings, sees each device
with its history, and gives or refuses their word for eSIM operations.

Served over HTTPS by aiohttp with Jinja2 templates (autoescaped) and plain HTML forms; the
registry's rules come from :class:`broker_bridge.registry.portal.ContractPortal`, scoped
to the signed-in contract.
"""
