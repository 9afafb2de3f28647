"""The public archive: sent issues as web pages, their index, an Atom feed and an agenda."""
