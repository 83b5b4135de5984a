"""The REACH vendor's domain: task states and their transitions, what a task asks for, words
and transcripts, captions and the customer's caption rules. Pure: no I/O, and it imports
nothing of ours outside `domain`."""
