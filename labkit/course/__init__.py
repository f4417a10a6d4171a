"""The course: the assignment, its checker and frontier, and the autograder (the assignment
notebook).
"""
