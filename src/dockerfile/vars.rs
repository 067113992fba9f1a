//! Variable scoping: ARG and ENV per stage, global ARGs, build-arg overrides, platform ARGs.
