"""Intake of feeds: pollers, feed state, CAP intake and mapping, JMA warning states, quarantine."""
