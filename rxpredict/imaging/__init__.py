"""Radiograph damage scoring: the RA2-DREAM data layout and a synthetic film generator (issue 12)."""
