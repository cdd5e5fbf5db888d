"""Lab 3 as an assignment: the student's notebook built from the lecture, its public checks, and an autograder that
grades each submission's functions and run outside the student's kernel. Nothing here is handed out."""
