"""Questionnaire submissions (PHQ-9, GAD-7, C-SSRS) and their scores."""
