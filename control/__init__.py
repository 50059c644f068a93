"""Junction control plane: management API, config store, audit and outbox.

The app is ``control.app.create_app``. This package imports nothing itself, so that a module which needs
one of its constants (the CLI's ``kafka-acl`` needs the consumer group names) does not load the whole server.
"""
