"""SQL for the control plane, one module per table family.

Functions take a connection (so callers choose the transaction) and every
query on tenant data filters on ``org_id``.
"""
