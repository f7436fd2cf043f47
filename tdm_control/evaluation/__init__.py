"""Evaluation: closed-loop episodes, grids and their reports, plan audits, prediction error, plots."""
