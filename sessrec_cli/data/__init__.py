"""Reading raw formats, preprocessing rules, and the in-memory `SequenceData`."""
