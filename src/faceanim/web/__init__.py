"""Pages served to people: the demo app and the human preference study's rater and admin pages."""
