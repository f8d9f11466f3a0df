import React from "react";
/** Props of the badge. */
export const Badge = ({ label }: { label: string }) => {
  return <span className="badge">{label}</span>;
};
