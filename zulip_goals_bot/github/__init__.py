"""GitHub tracking issues: the program's record, read into the bot and (opt-in) written back."""
