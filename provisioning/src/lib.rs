//! simpul-provision: enrolment bundles written onto a new box's SD card. Starts small:
//! the trust issue brings tokens, identities and the bundle itself.
