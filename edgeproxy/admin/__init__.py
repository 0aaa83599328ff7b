"""The admin surface: status as JSON and runtime control, served by twisted.web."""
