"""The front end: what the paper's method does to a pair of parents before anything is lowered.

Task heads and end-to-end training of the parents (``heads``, ``parent_training``), their features on images
(``features``), the CKA matrix between their blocks (``cka``) and the KL ranking (``kl``), stitch candidates
within each budget band (``search``), and the stitched variant with its trained stitching layer (``stitch``,
``finetune``).
"""
