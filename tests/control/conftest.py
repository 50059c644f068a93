from tests.control_support import control, control_settings  # noqa: F401  (fixtures)
