"""Training a StyleGAN2 with the project's own classes (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020): the discriminator, the losses and a resumable training loop."""
