"""Lineage: do teacher and student share a pretrained initialization?"""
