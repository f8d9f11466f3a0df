"""Module docstring: words here are one string."""
import os  # an import, a comment

def area(width: float, height=2.5e-1) -> float:
    '''Triple single quotes,
    over two lines.'''
    label = f"w={width}" + r'raw\n' + b"bytes"
    return width * height if label is not None else 0x1F
