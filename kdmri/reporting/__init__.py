"""Reporting: reports, statistics, tables, published numbers and plots."""
