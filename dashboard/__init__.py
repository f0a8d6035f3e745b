"""The migration dashboard (`seam dashboard`): one page that shows the whole migration."""
