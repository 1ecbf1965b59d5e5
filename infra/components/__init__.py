"""One construct per logical unit of the platform."""
