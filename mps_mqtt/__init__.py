"""MQTT v5 plumbing shared by agent, registry and SDK: broker URLs, connecting, request and
response with Correlation Data, credential bundles and the broker options of every command.
"""
