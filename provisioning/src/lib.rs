//! Enrolment bundles (issue: trust). Starts small.
