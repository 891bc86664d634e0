"""The Streamlit dashboard: the entry script, its data, and pure chart helpers per page."""
