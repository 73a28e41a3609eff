"""A package whose modules import each other relatively."""

NAME = "relpkg"
